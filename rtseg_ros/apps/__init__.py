"""Orchestration, the top layer: programs that start processes and chain the other layers' functions
(``rtseg-demo``, ``rtseg-replay``). Nothing imports from here; these modules may import everything."""
