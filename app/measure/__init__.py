"""Measurement tools in the viewer: distance, angle and Cobb angle placed by clicks on the 2D views, automatic
measurements from the labelling, the Measurements list, storage per series and the link to the chat context."""
