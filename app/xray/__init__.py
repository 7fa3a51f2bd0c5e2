"""Radiograph (AP spine) features of the workstation: the ``spinemed xray`` commands."""
