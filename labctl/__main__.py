"""`python -m labctl ...`"""
from labctl.cli import cli

cli(prog_name="labctl")
