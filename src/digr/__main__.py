import sys

from digr.cli.main import main

sys.exit(main())
