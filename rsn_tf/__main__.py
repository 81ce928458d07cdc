import sys

from rsn_tf.cli import main

sys.exit(main())
