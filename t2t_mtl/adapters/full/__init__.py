"""Full fine-tuning: every weight is trained."""
