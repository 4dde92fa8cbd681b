"""`python -m services.gateway [flags]`: the gateway alone (one Kubernetes Deployment)."""

import sys

from hartonomous.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", "gateway", *sys.argv[1:]]))
