from tests.rbac import SIGNED_IN, Case

CASES = {
    "catalogue.index": Case("GET", "/courses?q=phy", SIGNED_IN),
    "catalogue.course": Case("GET", "/courses/{course_code}", SIGNED_IN),
    "catalogue.section": Case("GET", "/sections/{section_id}", SIGNED_IN),
}
