"""From surface to asset: clean-up, simplification, UV atlas, bake and placement, for every backend."""
