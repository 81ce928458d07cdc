"""The pps benchmark: every runtime side by side in one run (see :mod:`rsn_tf.bench.run`)."""
