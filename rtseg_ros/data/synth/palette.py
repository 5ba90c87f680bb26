"""What the generator paints with: the Cityscapes label ids it draws, base colours and texture strengths."""
from cityscapesscripts.helpers.labels import name2label

# Label ids of everything the generator draws: 17 of the 19 training classes, plus two ignored ones.
LABEL = {name: name2label[name].id for name in (
    "ego vehicle", "static", "road", "sidewalk", "building", "wall", "fence", "pole",
    "traffic light", "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
    "bus", "bicycle")}

# Base colours (RGB). Road, sidewalk, walls, poles, buildings and cars overlap on purpose: greys are
# everywhere in a street, so colour alone must not give the class away.
ASPHALT = ((92, 92, 96), (78, 79, 84), (112, 110, 108), (68, 70, 76), (125, 124, 126))
PAVING = ((138, 136, 133), (118, 118, 122), (158, 150, 140), (150, 122, 112), (105, 104, 106))
FACADE = ((160, 160, 160), (200, 190, 170), (150, 85, 65), (215, 205, 185), (120, 95, 80), (190, 190, 185),
          (210, 195, 140), (175, 140, 140), (140, 150, 160), (95, 95, 100), (110, 120, 100))
GLASS = ((35, 40, 50), (62, 72, 88), (92, 110, 130), (25, 25, 30), (120, 125, 125))
CONCRETE = ((150, 150, 145), (120, 118, 112), (175, 165, 150), (100, 100, 104), (140, 120, 100))
METAL = ((105, 108, 110), (150, 152, 155), (50, 55, 52), (40, 40, 44), (70, 90, 75))
FOLIAGE = ((70, 105, 40), (55, 85, 35), (95, 120, 50), (120, 125, 60), (45, 70, 40), (100, 110, 90))
BARK = ((85, 70, 55), (110, 100, 90), (70, 60, 50))
GRASS = ((105, 135, 65), (125, 140, 80), (150, 140, 100), (120, 105, 80), (90, 115, 70))
CAR_PAINT = ((225, 225, 225), (175, 178, 180), (110, 110, 115), (30, 30, 32), (40, 60, 120), (150, 25, 25),
             (40, 70, 50), (190, 175, 140), (90, 20, 25), (200, 160, 40))
SKIN = ((230, 195, 165), (200, 150, 115), (150, 100, 70), (95, 65, 45))
CLOTHES = ((30, 30, 35), (60, 60, 70), (35, 45, 90), (140, 30, 35), (200, 200, 195), (120, 100, 70),
           (70, 90, 60), (170, 150, 120), (90, 60, 110), (210, 120, 40))
BIN = ((50, 90, 60), (110, 110, 110), (210, 110, 40), (40, 60, 120), (60, 60, 60))
SKY_CLEAR = ((62, 118, 195), (170, 200, 230))  # zenith, horizon
SKY_OVERCAST = ((175, 180, 188), (210, 212, 215))

# Multiplicative texture strength per class: (per-pixel grain, blotches 1/128 and stains 1/20 of the width).
TEXTURE = {"road": (0.06, 0.05, 0.10), "sidewalk": (0.05, 0.07, 0.08), "building": (0.03, 0.05, 0.10),
           "wall": (0.05, 0.06, 0.12), "vegetation": (0.12, 0.25, 0.15), "terrain": (0.14, 0.22, 0.18),
           "fence": (0.04, 0.04, 0.05), "static": (0.03, 0.03, 0.05), "car": (0.02, 0.02, 0.05),
           "truck": (0.02, 0.03, 0.06), "bus": (0.02, 0.02, 0.05)}
# Additive hue drift along the blotch noise: leaves and grass are not one green.
TINT = {"vegetation": (16, 14, -6), "terrain": (14, 8, 2)}
