build2/net/zfilter.o: src/net/zfilter.c src/net/zfilter.h
src/net/zfilter.h:
