"""Products teachers name in chat beyond the tool glossary: practice sites, school systems, creative and coding tools.

The masker keeps these as written, never taking one for a student's name. They are kept here, not in
config/tool-glossary.yaml, because the glossary also widens searches and is part of the triage model's input.
A single word that is also a given name or surname ("Seneca", "Lexia") is left out: a tool is never masked,
and a child of that name would then leak.
"""

from __future__ import annotations

MORE_PRODUCTS = (
    "wordwall", "classpoint", "hegarty maths", "sparx maths", "sparx reader", "mathswatch", "dr frost maths", "corbettmaths",
    "white rose maths", "numbots", "dreambox", "ixl", "zearn", "deltamath", "mathspace", "education perfect",
    "educake", "tassomai", "kerboodle", "bbc bitesize", "oak national academy", "newsela", "commonlit", "readtheory",
    "accelerated reader", "myon", "raz-kids", "purple mash", "j2e", "busy things",
    "widgit", "pobble", "thinglink", "genially", "piktochart", "powtoon", "animoto", "clipchamp",
    "vocaroo", "bandlab", "chrome music lab", "classcraft", "classcharts", "class charts", "go4schools", "scholarpack",
    "evidence me", "parentmail", "school gateway", "parentpay", "cpoms", "myconcern", "isams", "itslearning",
    "satchel one", "show my homework", "google keep", "microsoft whiteboard", "whiteboard.fi", "classkick", "quizalize", "baamboozle",
    "flippity", "classtools", "wheel of names", "kialo", "perusall", "diigo", "brightspace", "sentral",
    "seqta", "schoolbox", "daymap", "edval", "xuno", "procreate", "autodraw", "swift playgrounds",
    "codecombat", "makecode", "scratch jr", "lego spike", "blue-bot", "ozobot", "office lens", "microsoft lens",
    "quillbot", "curipod", "diffit", "lumio", "vevox", "ahaslides", "wooclap", "classroomscreen",
    "century", "formative", "blackboard", "firefly", "trinket", "tapestry", "hopscotch",
    "freckle", "kodu", "storybird", "remind",
)
