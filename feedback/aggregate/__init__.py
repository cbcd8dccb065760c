"""The worker side: unlocking keys, opening sealed boxes, tallying, DP releases."""
