"""visarch: the package behind the executable textbook *Vision Architectures*.

Each chapter of the book imports from here. The modules stand on six floors, and a
module imports only from floors below its own (modules of one floor do not import each
other); ``pyproject.toml`` declares the floors and ``lint-imports`` (import-linter) checks
them in ``tests/test_package.py``::

    5  denoising                 the U-Net page's denoising experiment, data to training
    4  train                     the training loop and its command line
    3  models, losses, roofline  the networks of the chapters, built from the floors below;
                                 the training objectives the pages share; the roofline,
                                 whose traffic counts use the closed forms
    2  nn, optim, cost, data,    layers, optimizers, closed-form counts, datasets,
       checkpoint, distributed,  resumable state, several processes, the tokenizer,
       tokenizer, plot,          the shared figures and receptive fields
       receptive_field
    1  functional, display,      the from-scratch operations; notebook display, metrics,
       metrics, sampling,        seeded sampling and float32 tolerances; forward hooks
       tolerance, hooks, timing  that record a network's outputs; wall-clock timing
    0  checks                    the argument checks every public function, layer,
                                 optimizer and model runs
"""

__version__ = "0.1.0"
