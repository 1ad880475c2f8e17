"""visarch: the package behind the executable textbook *Vision Architectures*.

Each chapter of the book imports from here. The modules stand on seven floors, and a
module imports only from floors below its own (modules of one floor do not import each
other); ``pyproject.toml`` declares the floors and ``lint-imports`` (import-linter) checks
them in ``tests/test_package.py``::

    6  denoising                 the U-Net page's denoising experiment, data to training
    5  train                     the training loop and its command line
    4  models, losses, roofline  the networks of the chapters, built from the floors below;
                                 the training objectives the pages share; the roofline,
                                 whose traffic counts use the closed forms
    3  cost                      closed-form parameter and multiply-add counts of the
                                 layers below and of the models' configurations
    2  nn, optim, data,          layers, optimizers, datasets, resumable state, several
       checkpoint, distributed,  processes, the tokenizer, the shared figures and
       tokenizer, plot,          receptive fields
       receptive_field
    1  functional, display,      the from-scratch operations; notebook display, metrics,
       metrics, sampling,        seeded sampling and float32 tolerances; forward hooks
       tolerance, hooks, timing  that record a network's outputs; wall-clock timing
    0  checks                    the argument checks every public function, layer,
                                 optimizer and model runs
"""

__version__ = "0.1.0"
