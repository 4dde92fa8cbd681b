"""`python -m services.search [flags]`: this service alone (one Kubernetes Deployment)."""

import sys

from hartonomous.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", "search", *sys.argv[1:]]))
