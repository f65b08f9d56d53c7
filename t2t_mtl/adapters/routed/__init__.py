"""Routed LoRA skills: Poly, MHR (routing per head) and C-Poly (plus skills owned by each task)."""
