build2/pop3/pop3_parse.o: src/pop3/pop3_parse.c src/pop3/pop3_parse.h
src/pop3/pop3_parse.h:
