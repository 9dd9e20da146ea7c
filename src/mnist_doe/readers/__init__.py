"""Reading data files: Kaggle-style CSV (`csvfile`), IDX (`idx`, also a converter to a CSV
pair) and the embedded MNIST digits (`tiny`, also a writer of small CSV pairs for tests)."""
