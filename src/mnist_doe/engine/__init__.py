"""The training engine of the train stage: model builders (`models`), the one-graph-call-per-epoch
trainer (`loop`), its training-mode forward pass (`forward`, `recurrent`), how a CPU's cores and
a GPU are used (`hardware`), and every reliance on Keras internals (`keras_internals`).

Only the train stage imports this package; it is the only code that imports TensorFlow.
"""
