"""`python -m labctl ...`"""
from labctl.cli import cli

# Guarded: a drill's spawned process (labctl.bounded) imports this module again, and must not run the CLI.
if __name__ == "__main__":
    cli(prog_name="labctl")
