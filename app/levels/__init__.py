"""Vertebral levels in the viewer: the labelling of the open series, its 2D labels and 3D markers, editing with
undo, the Levels panel (auto-label, label-map import) and the link to the consultation chat."""
