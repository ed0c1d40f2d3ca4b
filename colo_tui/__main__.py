import sys

from colo_tui.cli.main import main

sys.exit(main())
