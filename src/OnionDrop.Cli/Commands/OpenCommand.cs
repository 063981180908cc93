using System.CommandLine;

namespace OnionDrop.Cli.Commands;

public static class OpenCommand
{
    public static Command Create()
    {
        var command = new Command("open", "(not implemented yet)");
        command.SetAction(_ => { Console.Error.WriteLine("oniondrop open: not implemented yet"); return 70; });
        return command;
    }
}
