"""`python -m milestone_lib.deploy.kubernetes [FOLDER]`: render the default deployment into FOLDER (k8s/)."""

from __future__ import annotations

import sys

from .kustomize import write_manifests


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for path in write_manifests(argv[0] if argv else "k8s"):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
