"""Score examples/iris.csv with the demo's iris model, from Python (the modelbus SDK).

Run it at the repository root while `bash deploy/run-stack.sh --demo` is up:

    .venv/bin/python examples/predict_iris.py

The client connects to MODELBUS_KAFKA_BOOTSTRAP_SERVERS (default localhost:9092).
"""

import pyarrow.csv

from modelbus_client import ModelbusClient

SPECIES = ["setosa", "versicolor", "virginica"]  # the iris data set's target names

flowers = pyarrow.csv.read_csv("examples/iris.csv")

with ModelbusClient() as mb:
    entry = next(e for e in mb.catalog() if e.name == "demo-iris-species")
    print("inputs:", [p.name for p in entry.inputs], "outputs:", [p.name for p in entry.outputs])
    answer = mb.predict("demo-iris-species", flowers, timeout=60)

for row, species in enumerate(answer.column("species").to_pylist()):
    print(row, SPECIES[species])
