"""Pure tensor maths shared by the layers, losses and models (no Keras objects): the house's
lowest room (../shared/DESIGN.md)."""
