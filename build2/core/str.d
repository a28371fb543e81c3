build2/core/str.o: src/core/str.c src/core/str.h
src/core/str.h:
