"""Front-ends with the signatures of other YOLO code bases, as thin adapters over kyolo's core."""
