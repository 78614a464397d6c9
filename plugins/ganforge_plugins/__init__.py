"""First-party ganforge plugins, each loaded through the ``ganforge`` entry-point group."""
