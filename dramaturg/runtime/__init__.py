"""Everything around learning: checkpoints, logging, progress, seeding, evaluation, the run folder."""
