"""`python -m t2t_mtl ...` (and `accelerate launch -m t2t_mtl ...`)."""

import sys

from t2t_mtl.cli import main

sys.exit(main())
