"""``python -m weightinit`` and the ``weightinit`` console script (:func:`run`).

The command line is imported inside :func:`run`, so a Ctrl-C while it loads ends with one line
(exit 130), not a traceback.
"""

import sys


def run() -> int:
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("weightinit: interrupted", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(run())
