"""Experiments that test the seed's claims (section 3 of the seed; SEED-NOTES part 7).

    data-size   CNN (a restricted self-attention) vs attention (and window, BiLSTM) as the
                training data grows
    speed       forward + backward time per token vs sequence length: the RNN's sequential
                steps vs attention's parallel but quadratic cost
    distance    a generated task whose label is decided by the token k positions away
    positions   attention without positions vs each positional scheme (EWT, "I saw a saw")
    graph       attention masked by a graph's adjacency on a generated node-labeling task

Run them with ``attnlab experiment <name> --out DIR`` (``all`` runs every one and writes
``experiments.md``); ``--quick`` uses tiny settings. Each experiment module has
``run(settings) -> dict`` and writes ``<name>.json``, ``<name>.png`` and ``<name>.md``.
"""

EXPERIMENTS = {
    "data-size": "attnlab.experiments.data_size",
    "speed": "attnlab.experiments.speed",
    "distance": "attnlab.experiments.distance",
    "positions": "attnlab.experiments.positions",
    "graph": "attnlab.experiments.graph",
}
