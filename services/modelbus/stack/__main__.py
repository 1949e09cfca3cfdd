"""``python -m modelbus.stack [OPTIONS]``: the same as ``modelbus up``."""

from modelbus.stack.command import up

if __name__ == "__main__":
    up()
