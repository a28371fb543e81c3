build2/core/dict.o: src/core/dict.c src/core/dict.h
src/core/dict.h:
