"""From the field's folder layout to model batches: examples (tweet, image and crop paths, aux dicts),
the words' sub-token ids and labels, the images' stacked features, and seeded epochs of batches."""
