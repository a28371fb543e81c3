build2/store/store_msg.o: src/store/store_msg.c src/store/store_msg.h \
 src/store/store.h src/core/str.h
src/store/store_msg.h:
src/store/store.h:
src/core/str.h:
