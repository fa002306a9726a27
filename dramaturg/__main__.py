import sys

from dramaturg.cli import main

sys.exit(main())
