build2/delivery/srs.o: src/delivery/srs.c src/delivery/srs.h \
 src/core/base64.h
src/delivery/srs.h:
src/core/base64.h:
