import sys

from nc_keras.cli import main

sys.exit(main())
