"""The wizard's steps, one screen each, and its dialogs (Textual)."""
