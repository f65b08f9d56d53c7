"""t2t_mtl: one instruction-following seq2seq model for many tasks."""

__version__ = "0.1.0"
