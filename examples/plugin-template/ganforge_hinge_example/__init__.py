"""An example ganforge plugin: the hinge GAN loss, in :mod:`ganforge_hinge_example.hinge`.

ganforge loads the module named by the ``ganforge`` entry point in ``pyproject.toml``; importing
this package does not register anything by itself.
"""

__version__ = "0.1.0"
