namespace Gateway.Admin;

/// <summary>
/// An error answered without a body gets a problem document (RFC 9457, formerly 7807) too, like every other error
/// of the admin endpoint: a query value that is not of its parameter's type (<c>offset=abc</c>,
/// <c>limit=99999999999</c>), which minimal APIs refuse with a bare 400 before the handler runs; a path that does
/// not exist; a method a path does not take.
/// </summary>
public static class ProblemStatusPages
{
    private const string BadValue =
        "A query or route value is not of its parameter's type, or out of its range (offset, limit and seconds are whole numbers up to 2147483647); see /swagger.";

    public static WebApplication UseProblemStatusPages(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseStatusCodePages(context =>
        {
            var http = context.HttpContext;
            var status = http.Response.StatusCode;
            return http.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
            {
                HttpContext = http,
                ProblemDetails = { Status = status, Detail = status == StatusCodes.Status400BadRequest ? BadValue : null },
            }).AsTask();
        });
        return app;
    }
}
