"""The three special ids shared by the text and audio token streams (Lina-Speech's convention).

Every real token id (a text byte, a codec index) is shifted by ``N_SPECIAL`` so that these stay free.
"""

PAD = 0
BOS = 1
EOS = 2
N_SPECIAL = 3
