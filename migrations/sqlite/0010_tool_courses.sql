-- The courses a tool reaches: NULL for the courses that deploy it
-- themselves (rm_course_tools), 'all' for every course, those opened later
-- included, or a JSON array of course ids for exactly those courses.
ALTER TABLE tools ADD COLUMN courses text;

-- The course set a registrar chose when handing out a dynamic-registration
-- link, given to the tool that registers with it (same forms).
ALTER TABLE lti_registration_tokens ADD COLUMN courses text;
