import sys

from vrlib.cli import main

sys.exit(main())
