"""Run reports: what a run folder holds, drawn with matplotlib into an HTML page and its Markdown twin."""
