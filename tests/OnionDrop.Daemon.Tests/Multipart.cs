using System.Text;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// Builds multipart/form-data bodies byte by byte, as a browser (or a hostile client) would send them,
/// so tests can put exactly what they want in part headers, filenames included.
/// </summary>
public sealed class Multipart
{
    private readonly MemoryStream _body = new();
    public string Boundary { get; }

    public Multipart(string? boundary = null) => Boundary = boundary ?? "----OnionDropTest" + Guid.NewGuid().ToString("N")[..16];

    public string ContentType => $"multipart/form-data; boundary={Boundary}";

    /// <param name="rawFileName">The filename exactly as it goes on the wire, between the quotes.</param>
    public Multipart File(byte[] rawFileName, byte[] content, string field = "files", string contentType = "application/octet-stream")
    {
        Write($"--{Boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"");
        _body.Write(rawFileName);
        Write($"\"\r\nContent-Type: {contentType}\r\n\r\n");
        _body.Write(content);
        Write("\r\n");
        return this;
    }

    public Multipart File(string fileName, byte[] content, string contentType = "application/octet-stream") =>
        File(Encoding.UTF8.GetBytes(fileName), content, contentType: contentType);

    public Multipart Field(string name, string value)
    {
        Write($"--{Boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
        return this;
    }

    public byte[] Build()
    {
        var copy = new MemoryStream();
        _body.Position = 0;
        _body.CopyTo(copy);
        copy.Write(Encoding.ASCII.GetBytes($"--{Boundary}--\r\n"));
        return copy.ToArray();
    }

    public HttpContent ToContent()
    {
        var content = new ByteArrayContent(Build());
        content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
        return content;
    }

    private void Write(string s) => _body.Write(Encoding.UTF8.GetBytes(s));
}
