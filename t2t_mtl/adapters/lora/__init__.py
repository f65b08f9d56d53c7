"""LoRA (PEFT) on the backbone's block linears."""
