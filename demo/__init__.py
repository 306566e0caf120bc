"""The demo: a composition root that runs voxflow's main journey end to end on the embedded stack."""
