"""Pure losses: tensors in, (scalar loss, detached metrics) out; hyperparameters keyword-only."""
