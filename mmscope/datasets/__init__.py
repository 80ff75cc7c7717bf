"""Datasets shipped with mmscope: the seeded synthetic "shapes" set used by the demo."""
from .shapes import (CLASSES, SEG_BACKGROUND_VALUE, SEG_CLASSES, SEG_IGNORE_VALUE, count_images,
                     generate_shapes, is_up_to_date, render_scene, render_single, write_shapes)

__all__ = [
    'CLASSES', 'SEG_CLASSES', 'SEG_IGNORE_VALUE', 'SEG_BACKGROUND_VALUE', 'count_images',
    'generate_shapes', 'is_up_to_date', 'render_scene', 'render_single', 'write_shapes'
]
