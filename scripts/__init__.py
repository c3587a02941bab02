"""Model-promotion toolkit: step scripts (one per lifecycle step) over shared modules.

Step scripts are run as ``python scripts/<step>.py`` or imported (``from scripts import transition``)
and called as ``transition.main([...])``; both return the same exit codes (see ``scripts.errors``).
"""
