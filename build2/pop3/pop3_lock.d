build2/pop3/pop3_lock.o: src/pop3/pop3_lock.c src/pop3/pop3_lock.h \
 src/core/dict.h
src/pop3/pop3_lock.h:
src/core/dict.h:
