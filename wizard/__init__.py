"""The front doors: the argparse CLI (``cli.py``) and the Textual wizard (``app.py``).

Only the TUI modules import Textual; ``servewise.wizard.cli`` must stay importable without it.
"""
